"""What the commands (compare, breakdown, inspect, the callback) share; no command imports another."""
