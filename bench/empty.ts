// The runtime floor: an empty script, run with the plugin's flags, costs what Deno's start and exit cost.
