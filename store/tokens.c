/* API tokens: made from the kernel's random bytes, handed out once, and kept
 * only as sha256 digests; plus the admin token file made on first start. */
#include "store_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKEN_PREFIX "viv_"
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)
#define TOKEN_LABEL_MAX 200
#define ADMIN_TOKEN_FILE "admin-token"
#define ADMIN_TOKEN_FILE_MAX 4096

static bool token_format_valid(const char *token)
{
	return strncmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) == 0 &&
	       store_hex64_valid(token + TOKEN_PREFIX_LEN);
}

/* "viv_" and 64 hex digits of 32 random bytes. */
static enum viv_err token_new(char **out)
{
	char hex[VIV_SHA256_HEX_LEN + 1];
	enum viv_err err;

	*out = NULL;
	err = store_random_hex(hex, VIV_SHA256_HEX_LEN / 2);
	if (err)
		return err;
	if (asprintf(out, TOKEN_PREFIX "%s", hex) < 0) {
		*out = NULL;
		return VIV_ERR_NOMEM;
	}
	return VIV_OK;
}

static const char sql_token_insert[] =
	"INSERT INTO tokens (hash, label, created_at) VALUES (?1, ?2, ?3)"
	" ON CONFLICT (hash) DO NOTHING";

/* Records the digest of token; a digest already there is left as it is. */
static enum viv_err token_store(struct store *st, const char *token, const char *label)
{
	char hash[VIV_SHA256_HEX_LEN + 1];
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;

	viv_sha256_hex(token, strlen(token), hash);
	err = store_prepare(st, sql_token_insert, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, hash);
	store_bind_text(st, stmt, 2, label);
	store_bind_int64(st, stmt, 3, viv_now_ms());
	err = store_run(st, stmt);
	store_release(st, stmt);
	return err;
}

enum viv_err store_token_create(struct store *st, const char *label, char **token_out)
{
	enum viv_err err;
	char *token = NULL;

	*token_out = NULL;
	if (!label || strlen(label) > TOKEN_LABEL_MAX)
		return VIV_ERR_INVALID;
	err = token_new(&token);
	if (!err)
		err = token_store(st, token, label);
	if (err) {
		free(token);
		return err;
	}
	*token_out = token;
	return VIV_OK;
}

static const char sql_token_find[] = "SELECT 1 FROM tokens WHERE hash = ?1";

/*
 * The presented token is hashed and its digest looked up by the index on
 * tokens.hash. No secret is ever compared: the stored values are digests,
 * and the time a lookup takes can tell an attacker at most how far a digest
 * of their choosing matches a stored one, which does not help to find a
 * token with that digest (sha256 is preimage resistant). So a constant-time
 * compare would protect nothing here.
 */
enum viv_err store_token_check(struct store *st, const char *token)
{
	char hash[VIV_SHA256_HEX_LEN + 1];
	sqlite3_stmt *stmt = NULL;
	enum viv_err err;
	bool row;

	if (!token || !token_format_valid(token))
		return VIV_ERR_AUTH;
	viv_sha256_hex(token, strlen(token), hash);
	err = store_prepare(st, sql_token_find, &stmt);
	if (err)
		return err;
	store_bind_text(st, stmt, 1, hash);
	err = store_step(st, stmt, &row);
	store_release(st, stmt);
	if (err)
		return err;
	return row ? VIV_OK : VIV_ERR_AUTH;
}

/* Reads the admin token file: the token, with surrounding whitespace. */
static enum viv_err admin_token_read(const char *path, char **out)
{
	enum viv_err err;
	char *data = NULL;
	size_t len = 0, start = 0;
	struct stat sb;

	*out = NULL;
	err = viv_read_file(path, ADMIN_TOKEN_FILE_MAX, &data, &len);
	if (err)
		return err;
	while (len > 0 && isspace((unsigned char)data[len - 1]))
		len--;
	data[len] = '\0';
	while (start < len && isspace((unsigned char)data[start]))
		start++;
	memmove(data, data + start, len - start + 1);
	if (!token_format_valid(data)) {
		viv_log(VIV_ERROR,
			"store: %s does not hold a Vivarium token; remove it to make a new one",
			path);
		free(data);
		return VIV_ERR_INVALID;
	}
	/* The file is a credential: keep it private even if someone widened it. */
	if (stat(path, &sb) == 0 && (sb.st_mode & 077) && chmod(path, 0600) != 0)
		viv_log(VIV_WARN, "store: %s is readable by others and chmod failed: %s", path,
			strerror(errno));
	*out = data;
	return VIV_OK;
}

/*
 * The whole check runs under the database write lock, so that two processes
 * starting on a new data directory at once cannot each make a token. The
 * file is written before the digest is committed: a crash in between leaves
 * a token whose digest the next start inserts, never a digest nobody knows.
 */
enum viv_err store_admin_token_ensure(struct store *st, char **token_out, bool *created_out)
{
	enum viv_err err;
	char *path, *token = NULL, *line = NULL;
	bool created = false;

	*token_out = NULL;
	if (created_out)
		*created_out = false;
	path = viv_path_join(st->datadir, ADMIN_TOKEN_FILE);
	if (!path)
		return VIV_ERR_NOMEM;
	err = store_begin(st);
	if (err)
		goto out;
	err = admin_token_read(path, &token);
	if (err == VIV_ERR_NOT_FOUND) {
		err = token_new(&token);
		if (err)
			goto out;
		if (asprintf(&line, "%s\n", token) < 0) {
			line = NULL;
			err = VIV_ERR_NOMEM;
			goto out;
		}
		err = viv_write_file_atomic(path, line, strlen(line), 0600);
		if (err) {
			viv_log(VIV_ERROR, "store: cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		created = true;
	} else if (err && err != VIV_ERR_INVALID) {
		viv_log(VIV_ERROR, "store: cannot read %s: %s", path, viv_strerror(err));
	}
	if (err)
		goto out;
	err = token_store(st, token, "admin");
	if (!err)
		err = store_commit(st);
out:
	store_rollback(st);
	free(line);
	free(path);
	if (err) {
		free(token);
		return err;
	}
	if (created)
		viv_log(VIV_INFO, "store: made the admin token in %s/" ADMIN_TOKEN_FILE,
			st->datadir);
	*token_out = token;
	if (created_out)
		*created_out = created;
	return VIV_OK;
}
