// Tests for DecisionLog.
