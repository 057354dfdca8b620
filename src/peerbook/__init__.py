"""peerbook: a peer-to-peer exchange whose every peer replicates one deterministic order book."""

__all__ = ["__version__"]

__version__ = "0.1.0"
