// Geometry: TextCurv and PromptLID.
