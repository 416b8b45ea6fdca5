"""Where the core meets Salt: pillar validation and the helpers every Salt face shares
(arguments, pillar values, error translation). The only core package that imports salt."""
