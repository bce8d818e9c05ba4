"""The NATS JetStream tick bus: wire format, stream and consumers, publisher, subscriber, merge."""
