/* What the in-process benchmarks share: a build through the real pipeline
 * and store, and the request they send. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "pipeline.h"
#include "runner.h"
#include "store.h"

/* Builds the upload at upload (a file from store_upload_tmp(), which this
 * removes if it cannot be recorded) as a deployment of app, on the calling
 * thread. *d_out is the finished deployment, ready or failed (caller frees
 * with store_deployment_free()); an error is for the steps around it. */
enum viv_err bench_build(struct store *st, const struct pipe_config *cfg, const char *app,
                         const char *upload, struct store_deployment **d_out, char *err,
                         size_t errlen);

/* GET / from 127.0.0.1 to bench.localhost:8000 over HTTP/1.1. */
void bench_request(struct run_request *req);

#endif
