"""augmine's built-in recipes and training configs (YAML). Installed as the package
``augmine.builtin`` (data only); see ``augmine.core.runtime``."""
