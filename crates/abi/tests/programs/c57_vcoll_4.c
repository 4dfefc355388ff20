/* ranks: 4 */
/* Gathers, scatters and all-gathers on 4 rank(s): see vcoll.h. */
#include "vcoll.h"
