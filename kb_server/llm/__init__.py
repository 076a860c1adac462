"""Language models: an OpenAI-compatible client, our local worker, and the extractive answerer."""
