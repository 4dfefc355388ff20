/* ranks: 1 */
/* Gathers, scatters and all-gathers on 1 rank(s): see vcoll.h. */
#include "vcoll.h"
