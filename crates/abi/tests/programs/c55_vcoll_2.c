/* ranks: 2 */
/* Gathers, scatters and all-gathers on 2 rank(s): see vcoll.h. */
#include "vcoll.h"
