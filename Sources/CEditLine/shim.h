// libedit's readline compatibility layer (apt: libedit-dev; the Makefile installs it).
// readline.h uses FILE without including <stdio.h>.
#include <stdio.h>
#include <editline/readline.h>
