"""Who may do what: API tokens, groups and memberships."""
