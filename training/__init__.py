"""Training loop, MLflow logging and the run registry for the word-level LSTM."""
