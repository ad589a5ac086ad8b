"""Each chapter's experiments as tested functions, so notebooks stay short."""
