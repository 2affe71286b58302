"""The training data: MusicQA records (`dataset`), MuMu-LLaMA records (`mumu`) as read from the original's
files (`sources`), the one padding collate (`batch`), feature caches (`caches`), and the synthetic datasets the
tests and the demo models learn from (`synthetic`, `synthetic_mumu`, `synthetic_requests`, `generation_checks`).
The command lines over them are in MU-LLaMA/data/."""
