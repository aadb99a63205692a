"""The app's pure helpers, one module per job; no Streamlit in here.

The app is a thin layer: it draws widgets and calls these functions, which take and return
plain values (numpy arrays, dicts, strings) so they are tested without a browser.
"""
