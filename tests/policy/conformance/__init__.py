"""The upstream e2e NetworkPolicy model (namespaces x, y, z; pods a, b, c) and its truth tables."""
