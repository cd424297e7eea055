"""Reports in HTML and PDF with maps and plots: monthly district and city safety reports and
after-action reports of disaster events (issue 7). See docs/warehouse.md."""
