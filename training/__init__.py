"""Training loop, MLflow logging and the run store for the word-level LSTM."""
