/* ranks: 3 */
/* Gathers, scatters and all-gathers on 3 rank(s): see vcoll.h. */
#include "vcoll.h"
