"""First-party fine-tune plugins: the derived-backbone builder and registry, and the offline labelled tasks."""
