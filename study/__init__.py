"""raft-study: hyperparameter studies of RAFT and BYOL, and of why they do or do not collapse."""

__version__ = "0.1.0"
