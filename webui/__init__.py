"""The Streamlit web UI; it reaches the knowledge base only through the HTTP API."""
