"""The ensemble methods, each built from subnet/, train/ and ensemble."""
