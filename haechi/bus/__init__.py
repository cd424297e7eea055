"""Event buses: in-process (default) and, later, NATS JetStream for scale-out."""
