"""The modal study (issue 25): completion learned from modal masks, the built-in library, or both."""
