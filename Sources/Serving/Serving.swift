// The detection service.
