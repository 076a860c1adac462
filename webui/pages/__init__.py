"""Streamlit pages; app.py registers them with st.navigation and runs them as scripts."""
