"""Evaluation maths: text metrics of answers against references (metrics.py) and metrics of generated
music (generation_metrics.py); the ModelEvaluations/ scripts are command lines over them."""
