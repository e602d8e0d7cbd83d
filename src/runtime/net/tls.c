/*
 * TLS over OpenSSL memory BIOs: contexts, per-connection setup, the name a
 * server must prove, and handshake diagnostics. The bytes themselves move in
 * conn.c (the socket is a uv stream; OpenSSL only sees two memory BIOs).
 *
 * Client connections verify the server certificate and its name (RFC 5922
 * §7.1, RFC 6125) unless the endpoint was made with tls_no_verify.
 */
#include "net/net_int.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

int csip__net_tls_server_ctx(csip_endpoint *ep)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return CSIP_ERR_NOMEM;
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, ep->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, ep->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return CSIP_ERR_INVALID_ARG;
    }
    ep->tls_server = ctx;
    return 0;
}

SSL_CTX *csip__net_tls_client_ctx(csip_endpoint *ep)
{
    if (ep->tls_client)
        return ep->tls_client;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    ERR_clear_error();
    bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1;
    if (ok && !ep->tls_no_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ok = ep->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, ep->tls_ca_file, NULL) == 1
                             : SSL_CTX_set_default_verify_paths(ctx) == 1;
    }
    /* A certificate of our own is offered to servers that ask for one. */
    if (ok && ep->tls_cert_file && ep->tls_key_file)
        ok = SSL_CTX_use_certificate_chain_file(ctx, ep->tls_cert_file) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, ep->tls_key_file, SSL_FILETYPE_PEM) == 1;
    if (!ok) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    ep->tls_client = ctx;
    return ctx;
}

static bool is_ip_literal(const char *s)
{
    csip_addr a;
    return csip_addr_set_ip(&a, csip_str_c(s)) == 0;
}

int csip__net_tls_start(net_conn *c, bool server)
{
    csip_endpoint *ep = c->ep;
    SSL_CTX *ctx = server ? ep->tls_server : ep->tls_client;
    if (!ctx)
        return CSIP_ERR_INVALID_ARG;
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        return CSIP_ERR_NOMEM;
    }
    SSL_set_bio(ssl, rbio, wbio); /* the SSL owns both from here */
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (c->host[0] && !ep->tls_no_verify) {
            int ok;
            if (is_ip_literal(c->host)) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->host);
            } else {
                ok = SSL_set1_host(ssl, c->host);
                /* Server Name Indication carries names only (RFC 6066 §3). */
                if (ok == 1)
                    ok = (int)SSL_set_tlsext_host_name(ssl, c->host);
            }
            if (ok != 1) {
                SSL_free(ssl);
                return CSIP_ERR_NOMEM;
            }
        } else if (c->host[0] && !is_ip_literal(c->host)) {
            (void)SSL_set_tlsext_host_name(ssl, c->host);
        }
    }
    c->ssl = ssl;
    c->rbio = rbio;
    c->wbio = wbio;
    return 0;
}

void csip__net_tls_error(net_conn *c, char *out, size_t cap)
{
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(out, cap, "%s", X509_verify_cert_error_string(v));
        return;
    }
    unsigned long e = ERR_peek_last_error();
    if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(out, cap, "%s", r ? r : "handshake error");
    } else {
        snprintf(out, cap, "handshake error");
    }
    ERR_clear_error();
}

void csip__net_tls_name(const char *data, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    csip_msg *m = NULL;
    csip_parse_error err;
    if (csip_msg_parse(data, len, NULL, &m, &err) != 0) {
        csip_msg_free(m);
        return;
    }
    csip_str host = CSIP_STR_NULL;
    if (csip_msg_is_request(m)) {
        const csip_nameaddr *routes;
        const csip_uri *ruri;
        size_t n = 0;
        if (csip_msg_nameaddrs(m, CSIP_HDR_ROUTE, &routes, &n) == 0 && n > 0)
            host = routes[0].uri.host;
        else if (csip_msg_ruri(m, &ruri) == 0)
            host = ruri->host;
    } else {
        const csip_via *via;
        if (csip_msg_via(m, 0, &via) == 0)
            host = via->host;
    }
    if (host.len >= 2 && host.p[0] == '[') {
        host.p++;
        host.len -= 2;
    }
    if (host.p && host.len < cap) {
        memcpy(out, host.p, host.len);
        out[host.len] = 0;
    }
    csip_msg_free(m);
}
