"""A word-level LSTM language model written from scratch in PyTorch.

Pure PyTorch and the standard library: no MLflow, Gradio or command-line parsing here.
"""
