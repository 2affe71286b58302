"""MusicQA: the three sources' metadata readers and LLM question-answer synthesis (the MusicQA/ scripts
are command lines over this package)."""
