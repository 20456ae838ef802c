/* The PostgreSQL backend, through libpq: one connection per struct store,
 * statements prepared on the server (the store's ?N parameters become
 * $N), text results read row by row, a reconnection when the server went
 * away between transactions, and the notifications of route changes. */
#include "store_int.h"

#include <errno.h>
#include <poll.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Type OIDs fixed by PostgreSQL's catalog (pg_type.dat). */
#define PG_BOOLOID 16
#define PG_BYTEAOID 17

/* How long a statement waits for a lock another transaction holds, as
 * SQLite's busy timeout: past it the caller sees VIV_ERR_BUSY. */
#define PG_LOCK_TIMEOUT "10s"
#define PG_CONNECT_TIMEOUT_S "10"

/* The channel of route changes, and how often a runner's connection looks
 * for its notifications and, whatever it heard, reads the generation
 * itself (a notification sent while it was reconnecting is lost). */
#define PG_ROUTES_CHANNEL "vivarium_routes"
/* Where queueing work is told (store_pg_queue_wait()). */
#define PG_QUEUE_CHANNEL "vivarium_queue"
#define PG_NOTIFY_POLL_MS 50
#define PG_GEN_REREAD_MS 5000

struct pg_conn {
	PGconn *pg;
	unsigned session;     /* moves on at each (re)connection */
	unsigned n_names;     /* statements named so far */
	int64_t changes;      /* rows the last command changed */
	bool in_txn;          /* a transaction was open after the last command */
	bool listening;       /* LISTEN ran in this session */
	bool queue_listening; /* LISTEN on the build queue's channel, too */
	bool queue_heard;     /* a notification of queued work not yet taken */
	int64_t polled_ms;    /* when notifications were last looked for */
	int64_t reread_ms;    /* when the generation was last read */
	char errmsg[512];     /* the last error, for operator messages */
};

struct pg_stmt {
	char name[16];
	char *text;       /* with $N parameters */
	unsigned session; /* the session it is prepared in; 0: none */
	int n_params;
	unsigned *types; /* of the parameters, as the server resolved them */
	const char **values;
	int *lengths, *formats;
	char **owned; /* per parameter: a copy this statement made */
	PGresult *res;
	int row, n_rows;
	char **decoded; /* per column of the current row: bytea as bytes */
	size_t *decoded_len;
	int n_cols;
};

static struct pg_conn *conn_of(struct store *st)
{
	return st->conn;
}

static struct pg_stmt *stmt_of(struct store_stmt *stmt)
{
	return stmt->impl;
}

static void set_errmsg(struct pg_conn *c, const char *msg)
{
	size_t n;

	snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg && *msg ? msg : "unknown error");
	n = strlen(c->errmsg);
	while (n > 0 && (c->errmsg[n - 1] == '\n' || c->errmsg[n - 1] == ' '))
		c->errmsg[--n] = '\0';
}

/* Logs the error of res (or of the connection) with what was being done,
 * and maps its SQLSTATE to a status. */
static enum viv_err pg_error(struct store *st, const PGresult *res, const char *what)
{
	struct pg_conn *c = conn_of(st);
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	set_errmsg(c, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
	viv_log(VIV_ERROR, "store: %s: %s%s%s", what ? what : "postgresql", c->errmsg,
	        state ? " SQLSTATE " : "", state ? state : "");
	if (!state)
		return VIV_ERR_DB;
	/* Lock timeouts, deadlocks and serialization failures: try again. */
	if (!strcmp(state, "55P03") || !strcmp(state, "40P01") || !strcmp(state, "40001") ||
	    !strcmp(state, "57014"))
		return VIV_ERR_BUSY;
	if (!strcmp(state, "53200"))
		return VIV_ERR_NOMEM;
	return VIV_ERR_DB;
}

/* Runs a command without parameters or rows on the connection. */
static enum viv_err pg_command(struct store *st, const char *sql)
{
	PGresult *res = PQexec(conn_of(st)->pg, sql);
	enum viv_err err = VIV_OK;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		err = pg_error(st, res, sql);
	PQclear(res);
	return err;
}

/* What every session starts with. */
static enum viv_err session_setup(struct store *st, char *errbuf, size_t errlen)
{
	struct pg_conn *c = conn_of(st);
	const char *enc = PQparameterStatus(c->pg, "server_encoding");
	enum viv_err err;

	/* Text goes in and out as UTF-8, whatever the client's locale. */
	if (!enc || strcmp(enc, "UTF8") != 0) {
		viv_errf(errbuf, errlen,
		         "the PostgreSQL database %s has the encoding %s; Vivarium needs UTF8 "
		         "(CREATE DATABASE ... ENCODING 'UTF8')",
		         st->db_path, enc ? enc : "unknown");
		return VIV_ERR_UNSUPPORTED;
	}
	err = pg_command(st, "SET client_encoding = 'UTF8'");
	if (!err)
		err = pg_command(st, "SET lock_timeout = '" PG_LOCK_TIMEOUT "'");
	if (err)
		viv_errf(errbuf, errlen, "cannot set up the connection to %s: %s", st->db_path,
		         c->errmsg);
	c->session++;
	c->listening = false;
	c->queue_listening = false;
	c->in_txn = false;
	return err;
}

/* After the server went away: connects again, unless a transaction was
 * open (its statements are lost, and the caller is failing already). */
static bool reconnect(struct store *st)
{
	struct pg_conn *c = conn_of(st);
	char msg[256];

	if (PQstatus(c->pg) != CONNECTION_BAD || c->in_txn)
		return PQstatus(c->pg) == CONNECTION_OK;
	PQreset(c->pg);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_errmsg(c, PQerrorMessage(c->pg));
		return false;
	}
	if (session_setup(st, msg, sizeof(msg)) != VIV_OK)
		return false;
	viv_log(VIV_INFO, "store: connected to %s again", st->db_path);
	return true;
}

/* The statement's text with ?N made $N, outside quoted strings and names. */
static char *translate(const char *sql)
{
	size_t n = strlen(sql);
	char *out = malloc(n + 1), *o = out, quote = 0;

	if (!out)
		return NULL;
	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '?' && p[1] >= '0' && p[1] <= '9') {
			*o++ = '$';
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

static void decoded_free(struct pg_stmt *s)
{
	for (int i = 0; s->decoded && i < s->n_cols; i++)
		free(s->decoded[i]);
	free(s->decoded);
	free(s->decoded_len);
	s->decoded = NULL;
	s->decoded_len = NULL;
	s->n_cols = 0;
}

/* Prepares s on the server in the current session and learns its
 * parameters' types. */
static enum viv_err server_prepare(struct store *st, struct pg_stmt *s)
{
	struct pg_conn *c = conn_of(st);
	PGresult *res;
	enum viv_err err = VIV_OK;

	if (!reconnect(st))
		return pg_error(st, NULL, "connecting");
	res = PQprepare(c->pg, s->name, s->text, 0, NULL);
	/* Preparing changes nothing: on a connection the server dropped while
	 * it was idle, connect again and prepare once more. */
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQstatus(c->pg) == CONNECTION_BAD &&
	    !c->in_txn) {
		PQclear(res);
		viv_log(VIV_INFO, "store: the connection to %s was lost; connecting again",
		        st->db_path);
		if (!reconnect(st))
			return pg_error(st, NULL, "connecting");
		res = PQprepare(c->pg, s->name, s->text, 0, NULL);
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		err = pg_error(st, res, s->text);
	PQclear(res);
	if (err)
		return err;
	res = PQdescribePrepared(c->pg, s->name);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		err = pg_error(st, res, s->text);
		PQclear(res);
		return err;
	}
	if (s->session == 0) {
		s->n_params = PQnparams(res);
		s->types = calloc((size_t)s->n_params + 1, sizeof(*s->types));
		s->values = calloc((size_t)s->n_params + 1, sizeof(*s->values));
		s->lengths = calloc((size_t)s->n_params + 1, sizeof(*s->lengths));
		s->formats = calloc((size_t)s->n_params + 1, sizeof(*s->formats));
		s->owned = calloc((size_t)s->n_params + 1, sizeof(*s->owned));
		if (!s->types || !s->values || !s->lengths || !s->formats || !s->owned)
			err = VIV_ERR_NOMEM;
		for (int i = 0; !err && i < s->n_params; i++)
			s->types[i] = PQparamtype(res, i);
	}
	PQclear(res);
	if (!err)
		s->session = c->session;
	return err;
}

static void pg_stmt_free(struct pg_stmt *s)
{
	if (!s)
		return;
	PQclear(s->res);
	decoded_free(s);
	for (int i = 0; s->owned && i < s->n_params; i++)
		free(s->owned[i]);
	free(s->owned);
	free(s->types);
	free(s->values);
	free(s->lengths);
	free(s->formats);
	free(s->text);
	free(s);
}

static enum viv_err pg_prepare(struct store *st, struct store_stmt *stmt)
{
	struct pg_conn *c = conn_of(st);
	struct pg_stmt *s = calloc(1, sizeof(*s));
	enum viv_err err;

	if (!s)
		return VIV_ERR_NOMEM;
	s->text = translate(stmt->sql);
	if (!s->text) {
		free(s);
		return VIV_ERR_NOMEM;
	}
	snprintf(s->name, sizeof(s->name), "v%u", ++c->n_names);
	s->row = -1;
	err = server_prepare(st, s);
	if (err) {
		pg_stmt_free(s);
		return err;
	}
	stmt->impl = s;
	return VIV_OK;
}

static void pg_finalize(struct store_stmt *stmt)
{
	struct pg_stmt *s = stmt_of(stmt);
	struct pg_conn *c = conn_of(stmt->st);
	char sql[64];

	/* A statement of the cache lives as long as the session; one that
	 * was not is deallocated on the server now. */
	if (!stmt->cached && s->session == c->session && PQstatus(c->pg) == CONNECTION_OK) {
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->name);
		PQclear(PQexec(c->pg, sql));
	}
	pg_stmt_free(s);
}

static void pg_reset(struct store_stmt *stmt)
{
	struct pg_stmt *s = stmt_of(stmt);

	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	s->n_rows = 0;
	decoded_free(s);
	for (int i = 0; i < s->n_params; i++) {
		free(s->owned[i]);
		s->owned[i] = NULL;
		s->values[i] = NULL;
		s->lengths[i] = 0;
		s->formats[i] = 0;
	}
}

/* A copy of n bytes of text that PostgreSQL's text accepts: UTF-8 without
 * NUL. Bytes that are not (a guest's output, a compiler's) become U+FFFD,
 * the replacement character, as the API shows them anyway. */
static char *utf8_copy(const char *p, size_t n, size_t *len_out)
{
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n;) {
		size_t k = p[i] ? viv_utf8_seq(p + i, n - i) : 0;

		if (k == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, p + i, k);
		o += k;
		i += k;
	}
	*o = '\0';
	*len_out = (size_t)(o - out);
	return out;
}

static enum viv_err pg_bind(struct store_stmt *stmt, int idx, const struct store_val *v)
{
	struct pg_stmt *s = stmt_of(stmt);
	size_t len = 0;
	int i = idx - 1;
	char *copy = NULL;

	if (idx < 1 || idx > s->n_params) {
		viv_log(VIV_ERROR, "store: parameter %d of %d bound: %s", idx, s->n_params,
		        stmt->sql);
		return VIV_ERR_INTERNAL;
	}
	free(s->owned[i]);
	s->owned[i] = NULL;
	s->formats[i] = 0;
	s->lengths[i] = 0;
	s->values[i] = NULL;
	switch (v->kind) {
	case STORE_VAL_NULL:
		return VIV_OK;
	case STORE_VAL_INT:
		if (asprintf(&copy, "%lld", (long long)v->i) < 0)
			return VIV_ERR_NOMEM;
		len = strlen(copy);
		break;
	case STORE_VAL_TEXT:
		/* Text for a bytea parameter goes as it is. */
		if (s->types[i] != PG_BYTEAOID) {
			copy = utf8_copy(v->p, v->n, &len);
			if (!copy)
				return VIV_ERR_NOMEM;
			break;
		}
		/* fall through */
	case STORE_VAL_BLOB:
		s->values[i] = v->p;
		s->lengths[i] = v->n > INT32_MAX ? INT32_MAX : (int)v->n;
		s->formats[i] = 1;
		return VIV_OK;
	}
	s->owned[i] = copy;
	s->values[i] = copy;
	s->lengths[i] = (int)len;
	return VIV_OK;
}

/* Runs the statement with its bindings. */
/* Whether a statement may run again when the connection was found gone as
 * it was sent: outside a transaction, a read or the start of one did
 * nothing that a second run would do twice. */
static bool may_rerun(const char *sql)
{
	return (strncmp(sql, "SELECT ", 7) == 0 && !strstr(sql, "FOR UPDATE") &&
	        !strstr(sql, "pg_notify")) ||
	       strcmp(sql, "BEGIN") == 0;
}

/* Runs the statement with its bindings. */
static enum viv_err execute(struct store_stmt *stmt)
{
	struct store *st = stmt->st;
	struct pg_conn *c = conn_of(st);
	struct pg_stmt *s = stmt_of(stmt);
	bool was_in_txn = c->in_txn;
	enum viv_err err;
	const char *tuples;

	for (int attempt = 0;; attempt++) {
		if (s->session != c->session || PQstatus(c->pg) != CONNECTION_OK) {
			err = server_prepare(st, s);
			if (err)
				return err;
		}
		s->res = PQexecPrepared(c->pg, s->name, s->n_params, s->values, s->lengths,
		                        s->formats, 0);
		if (PQresultStatus(s->res) == PGRES_COMMAND_OK ||
		    PQresultStatus(s->res) == PGRES_TUPLES_OK)
			break;
		/* A server that restarted, or closed an idle connection: the
		 * first statement after it finds out. */
		if (attempt == 0 && !was_in_txn && PQstatus(c->pg) == CONNECTION_BAD &&
		    may_rerun(stmt->sql)) {
			viv_log(VIV_INFO, "store: the connection to %s was lost; connecting again",
			        st->db_path);
			PQclear(s->res);
			s->res = NULL;
			c->in_txn = false;
			continue;
		}
		err = pg_error(st, s->res, stmt->sql);
		PQclear(s->res);
		s->res = NULL;
		c->in_txn = PQtransactionStatus(c->pg) == PQTRANS_INERROR;
		return err;
	}
	/* PostgreSQL answers the COMMIT of a transaction that failed with
	 * ROLLBACK, and no error. */
	if (strcmp(stmt->sql, "COMMIT") == 0 && strcmp(PQcmdStatus(s->res), "COMMIT") != 0) {
		viv_log(VIV_ERROR, "store: COMMIT on %s was a %s", st->db_path,
		        PQcmdStatus(s->res));
		set_errmsg(c, "the transaction was rolled back");
		PQclear(s->res);
		s->res = NULL;
		c->in_txn = false;
		return VIV_ERR_DB;
	}
	tuples = PQcmdTuples(s->res);
	c->changes = tuples && *tuples ? strtoll(tuples, NULL, 10) : 0;
	c->in_txn = PQtransactionStatus(c->pg) != PQTRANS_IDLE;
	s->n_rows = PQntuples(s->res);
	s->n_cols = PQnfields(s->res);
	s->row = -1;
	return VIV_OK;
}

static enum viv_err pg_step(struct store_stmt *stmt, bool *row_out)
{
	struct pg_stmt *s = stmt_of(stmt);
	enum viv_err err;

	*row_out = false;
	if (!s->res) {
		err = execute(stmt);
		if (err)
			return err;
	}
	decoded_free(s);
	s->n_cols = PQnfields(s->res);
	if (s->row < s->n_rows)
		s->row++;
	*row_out = s->row < s->n_rows;
	return VIV_OK;
}

static bool have(struct pg_stmt *s, int col)
{
	return s->res && s->row >= 0 && s->row < s->n_rows && col >= 0 && col < s->n_cols;
}

static bool pg_col_null(struct store_stmt *stmt, int col)
{
	struct pg_stmt *s = stmt_of(stmt);

	return !have(s, col) || PQgetisnull(s->res, s->row, col);
}

static int64_t pg_col_int64(struct store_stmt *stmt, int col)
{
	struct pg_stmt *s = stmt_of(stmt);
	const char *v;

	if (pg_col_null(stmt, col))
		return 0;
	v = PQgetvalue(s->res, s->row, col);
	if (PQftype(s->res, col) == PG_BOOLOID)
		return v[0] == 't';
	return strtoll(v, NULL, 10);
}

static double pg_col_double(struct store_stmt *stmt, int col)
{
	struct pg_stmt *s = stmt_of(stmt);

	if (pg_col_null(stmt, col))
		return 0;
	return strtod(PQgetvalue(s->res, s->row, col), NULL);
}

/* A bytea column's bytes, decoded from the text result once per row. */
static const void *bytea(struct pg_stmt *s, int col, size_t *len_out)
{
	if (!s->decoded) {
		s->decoded = calloc((size_t)s->n_cols, sizeof(*s->decoded));
		s->decoded_len = calloc((size_t)s->n_cols, sizeof(*s->decoded_len));
		if (!s->decoded || !s->decoded_len) {
			decoded_free(s);
			return NULL;
		}
	}
	if (!s->decoded[col]) {
		size_t n = 0;
		unsigned char *raw =
		        PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, col), &n);

		if (!raw)
			return NULL;
		/* With a NUL after the bytes, for readers of text. */
		s->decoded[col] = malloc(n + 1);
		if (s->decoded[col]) {
			memcpy(s->decoded[col], raw, n);
			s->decoded[col][n] = '\0';
			s->decoded_len[col] = n;
		}
		PQfreemem(raw);
		if (!s->decoded[col])
			return NULL;
	}
	*len_out = s->decoded_len[col];
	return s->decoded[col];
}

static const char *pg_col_text(struct store_stmt *stmt, int col)
{
	struct pg_stmt *s = stmt_of(stmt);
	size_t n;

	if (pg_col_null(stmt, col))
		return NULL;
	if (PQftype(s->res, col) == PG_BYTEAOID)
		return bytea(s, col, &n);
	return PQgetvalue(s->res, s->row, col);
}

static const void *pg_col_blob(struct store_stmt *stmt, int col, size_t *len_out)
{
	struct pg_stmt *s = stmt_of(stmt);

	*len_out = 0;
	if (pg_col_null(stmt, col))
		return NULL;
	if (PQftype(s->res, col) == PG_BYTEAOID)
		return bytea(s, col, len_out);
	*len_out = (size_t)PQgetlength(s->res, s->row, col);
	return PQgetvalue(s->res, s->row, col);
}

static int64_t pg_changes(struct store *st)
{
	return conn_of(st)->changes;
}

static bool pg_in_transaction(struct store *st)
{
	struct pg_conn *c = conn_of(st);

	if (PQstatus(c->pg) != CONNECTION_OK) {
		/* What was open went with the connection. */
		c->in_txn = false;
		return false;
	}
	c->in_txn = PQtransactionStatus(c->pg) != PQTRANS_IDLE;
	return c->in_txn;
}

static enum viv_err pg_exec_script(struct store *st, const char *sql, char *msg, size_t msglen)
{
	struct pg_conn *c = conn_of(st);
	PGresult *res;
	enum viv_err err = VIV_OK;

	res = PQexec(c->pg, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = pg_error(st, res, "script");
		viv_errf(msg, msglen, "%s", c->errmsg);
	}
	PQclear(res);
	c->in_txn = PQtransactionStatus(c->pg) != PQTRANS_IDLE;
	return err;
}

static const char *pg_errmsg(struct store *st)
{
	return conn_of(st)->errmsg;
}

/* "PostgreSQL database NAME on HOST as USER", without the password, for
 * messages. */
static char *describe(const char *url)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL);
	const char *db = NULL, *host = NULL, *user = NULL, *port = NULL;
	char *out = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "dbname"))
			db = o->val;
		else if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
	}
	if (asprintf(&out, "the PostgreSQL database %s on %s%s%s%s%s", db ? db : "(default)",
	             host ? host : "the local server", port ? " port " : "", port ? port : "",
	             user ? " as " : "", user ? user : "") < 0)
		out = NULL;
	PQconninfoFree(opts);
	return out;
}

/*
 * libpq waits for a server that went silent (a network partition) as long
 * as TCP does, a quarter of an hour, and a runner's event loop with it:
 * keepalives find a dead peer within about 25 s and the user timeout ends a
 * send that nobody acknowledges in 30 s, on TCP (a unix socket ignores
 * both). The URL comes last: what it says wins over these defaults.
 */
static enum viv_err pg_open(struct store *st, const char *url, char *errbuf, size_t errlen)
{
	static const char *const keys[] = {"connect_timeout",
	                                   "application_name",
	                                   "keepalives",
	                                   "keepalives_idle",
	                                   "keepalives_interval",
	                                   "keepalives_count",
	                                   "tcp_user_timeout",
	                                   "dbname",
	                                   NULL};
	const char *values[] = {
	        PG_CONNECT_TIMEOUT_S, "vivd", "1", "10", "5", "3", "30000", url, NULL};
	struct pg_conn *c;
	char *why = NULL;
	PQconninfoOption *opts;

	opts = PQconninfoParse(url, &why);
	if (!opts) {
		viv_errf(errbuf, errlen, "the store's address is not a PostgreSQL URL: %s",
		         why ? why : "out of memory");
		PQfreemem(why);
		return VIV_ERR_INVALID;
	}
	PQconninfoFree(opts);
	free(st->db_path);
	st->db_path = describe(url);
	c = calloc(1, sizeof(*c));
	if (!st->db_path || !c) {
		free(c);
		return VIV_ERR_NOMEM;
	}
	st->conn = c;
	c->pg = PQconnectdbParams(keys, values, 1);
	if (!c->pg)
		return VIV_ERR_NOMEM;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_errmsg(c, PQerrorMessage(c->pg));
		viv_errf(errbuf, errlen, "cannot connect to %s: %s", st->db_path, c->errmsg);
		return VIV_ERR_DB;
	}
	return session_setup(st, errbuf, errlen);
}

static void pg_close(struct store *st)
{
	struct pg_conn *c = conn_of(st);

	if (!c)
		return;
	PQfinish(c->pg);
	free(c);
	st->conn = NULL;
}

const struct store_backend store_pg_backend = {
        .name = "PostgreSQL",
        .open = pg_open,
        .close = pg_close,
        .prepare = pg_prepare,
        .finalize = pg_finalize,
        .reset = pg_reset,
        .bind = pg_bind,
        .step = pg_step,
        .col_int64 = pg_col_int64,
        .col_double = pg_col_double,
        .col_text = pg_col_text,
        .col_blob = pg_col_blob,
        .col_null = pg_col_null,
        .changes = pg_changes,
        .in_transaction = pg_in_transaction,
        .exec_script = pg_exec_script,
        .errmsg = pg_errmsg,
};

/* ---- Route changes ----------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char sql_gen_read[] =
        "SELECT gen, (SELECT id FROM vivarium_schema) FROM routes_generation";

enum viv_err store_pg_routes_read(struct store *st, uint64_t *gen_out, char *db_id_out)
{
	struct store_stmt *stmt = NULL;
	enum viv_err err;
	bool row = false;

	*gen_out = 0;
	if (db_id_out)
		db_id_out[0] = '\0';
	err = store_prepare(st, sql_gen_read, &stmt);
	if (err)
		return err;
	err = store_step(st, stmt, &row);
	if (!err && row) {
		const char *id = store_col_str(stmt, 1);

		*gen_out = (uint64_t)store_col_int64(stmt, 0);
		if (db_id_out)
			snprintf(db_id_out, STORE_ROUTES_DB_LEN + 1, "%s", id ? id : "");
	}
	store_release(st, stmt);
	return err;
}

/*
 * Called on every request a runner serves, so it costs a clock read;
 * every PG_NOTIFY_POLL_MS it also reads what the server sent (without
 * waiting), and every PG_GEN_REREAD_MS it asks for the generation itself.
 * Nothing is looked at inside a transaction: notifications come between
 * them.
 */
bool store_pg_routes_poll(struct store *st, uint64_t *gen_out)
{
	struct pg_conn *c = conn_of(st);
	int64_t now = mono_ms();
	uint64_t best = 0;
	PGnotify *n;
	bool heard = false;

	*gen_out = 0;
	if (now - c->polled_ms < PG_NOTIFY_POLL_MS || c->in_txn)
		return false;
	c->polled_ms = now;
	if (!c->listening || now - c->reread_ms >= PG_GEN_REREAD_MS) {
		if (!c->listening && pg_command(st, "LISTEN " PG_ROUTES_CHANNEL) == VIV_OK)
			c->listening = true;
		c->reread_ms = now;
		if (store_pg_routes_read(st, &best, NULL) == VIV_OK)
			heard = true;
	}
	if (PQconsumeInput(c->pg) != 1)
		return heard;
	while ((n = PQnotifies(c->pg)) != NULL) {
		if (!strcmp(n->relname, PG_ROUTES_CHANNEL)) {
			uint64_t g = strtoull(n->extra, NULL, 10);

			if (g > best)
				best = g;
			heard = true;
		} else if (!strcmp(n->relname, PG_QUEUE_CHANNEL)) {
			c->queue_heard = true;
		}
		PQfreemem(n);
	}
	*gen_out = best;
	return heard;
}

/*
 * A builder waits for work queued on any machine on its connection's
 * socket: queueing notifies PG_QUEUE_CHANNEL (store_queue_bump()), which
 * the server delivers to every session that listens. A route change heard
 * meanwhile makes the next store_pg_routes_poll() read the generation.
 */
bool store_pg_queue_wait(struct store *st, unsigned timeout_ms)
{
	struct pg_conn *c = conn_of(st);
	struct pollfd p;
	PGnotify *n;

	if (c->in_txn)
		return false;
	if (!c->queue_listening) {
		if (pg_command(st, "LISTEN " PG_QUEUE_CHANNEL) != VIV_OK)
			return false;
		c->queue_listening = true;
	}
	if (!c->queue_heard) {
		p.fd = PQsocket(c->pg);
		p.events = POLLIN;
		p.revents = 0;
		if (p.fd < 0 || poll(&p, 1, (int)timeout_ms) <= 0 || PQconsumeInput(c->pg) != 1)
			return false;
		while ((n = PQnotifies(c->pg)) != NULL) {
			if (!strcmp(n->relname, PG_QUEUE_CHANNEL))
				c->queue_heard = true;
			else
				c->reread_ms = 0;
			PQfreemem(n);
		}
	}
	if (!c->queue_heard)
		return false;
	c->queue_heard = false;
	return true;
}

void store_pg_queue_notify(struct store *st)
{
	if (pg_command(st, "NOTIFY " PG_QUEUE_CHANNEL) != VIV_OK)
		viv_log(VIV_WARN, "store: could not tell the builders of other machines of new "
		                  "work; they find it within a second");
}
