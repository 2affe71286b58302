"""What tests, benchmarks and the demo build use, and users do not: tiny models in the released
artefacts' on-disk formats (`tiny`), the loops they learn with (`learn`), and the original code's
checkpoint.pth layout (`upstream`)."""
