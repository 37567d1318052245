// Tests for Detection.
