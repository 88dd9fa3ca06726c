"""The gRPC transport: proto messages to and from domain types, nothing else."""
