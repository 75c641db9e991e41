"""Deployment: building (and pushing) the Hugging Face Space."""
