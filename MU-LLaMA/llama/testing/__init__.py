"""What tests, benchmarks and the demo builds use, and users do not: tiny models in the released artefacts'
on-disk formats (`tiny`, `vision`, `decoders`), the Meta and HF layouts of a LLaMA download (`layouts`), the
original code's checkpoint.pth layout (`upstream`), tiny copies of the two releases (`releases`), and the loops
tiny models learn with (`learn`)."""
