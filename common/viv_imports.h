/* The imports the platform provides to guests, with their wasm types: the
 * one list that the pipeline checks modules against at deploy time and that
 * the runner implements (a unit test holds the two together). */
#ifndef VIV_IMPORTS_H
#define VIV_IMPORTS_H

#include <stdbool.h>
#include <stddef.h>

/* A function type as text: parameter letters, ':' and result letters, with
 * i = i32, I = i64, f = f32, F = f64. "iiii:i" is (i32 i32 i32 i32) -> i32;
 * ":" is () -> (). */
struct viv_import {
	const char *module;
	const char *name;
	const char *type;
};

/* The table, ended by an entry whose module is NULL. */
extern const struct viv_import viv_imports[];

/* The provided import with that module and name, or NULL. */
const struct viv_import *viv_import_find(const char *module, const char *name);

/* The C symbol wasm2c gives an import (module "env", name "x" gives
 * "Z_envZ_x"), written into buf; false if it does not fit. */
bool viv_import_symbol(const char *module, const char *name, char *buf, size_t len);

#endif
