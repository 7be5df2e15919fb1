"""The auditors' browser pages over the trail: the same forms and selectors as the API."""
