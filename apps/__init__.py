"""augmine's Streamlit app (``streamlit run apps/streamlit_app.py``, or ``augmine app``).
Installed as the package ``augmine.apps``; see ``augmine.core.runtime``."""
