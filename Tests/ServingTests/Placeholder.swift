// Tests for Serving.
