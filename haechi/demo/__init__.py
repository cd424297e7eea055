"""Demo scenarios: real Seoul disasters replayed through the live pipeline in accelerated time."""
