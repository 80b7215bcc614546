/* libcurl for the etcd backend. curl_easy_setopt and curl_easy_getinfo are variadic,
 * which Swift cannot call: these typed wrappers can be. */
#include <curl/curl.h>

static inline CURLcode dipc_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode dipc_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode dipc_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION. */
typedef size_t (*dipc_curl_data_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode dipc_curl_setopt_data_function(CURL *handle, CURLoption option, dipc_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

/* CURLOPT_XFERINFOFUNCTION: a non-zero return aborts the transfer. */
typedef int (*dipc_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);
static inline CURLcode dipc_curl_setopt_progress_function(CURL *handle, dipc_curl_progress_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

static inline CURLcode dipc_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
