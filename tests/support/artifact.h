/* Building real artifacts for runner tests, through the real pipeline. */
#ifndef TESTS_ARTIFACT_H
#define TESTS_ARTIFACT_H

#include <stddef.h>

/* Builds an artifact from one source file (name decides the language:
 * "app.wat", "main.c", ...) with the pipeline, in a temporary data
 * directory, and returns the .so's path (caller frees; the directory lives
 * until the process exits). Fails the test if the build fails. */
char *tsup_artifact(const char *name, const char *source);

/* The same from several files: names[i] holds texts[i]. */
char *tsup_artifact_files(const char *const *names, const char *const *texts, size_t n);

#endif
