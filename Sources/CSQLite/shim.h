#ifndef CURVALID_CSQLITE_SHIM_H
#define CURVALID_CSQLITE_SHIM_H
#include <sqlite3.h>
#endif
