"""kseries: the AMD Bus Lock Threshold series for KVM/SVM, rendered and validated against a base."""

__version__ = "0.1.0"
