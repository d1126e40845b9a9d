vcl 4.1;
# Varnish in front of several `geoserver serve` instances (docs/scaling.md). Varnish 7.1 (Debian 12's package).
# Each instance tells Varnish what a change made stale: GEOSERVER_CACHE_PURGE_URLS=http://<varnish address>/ makes
# it send `PURGE /` with the stale answers' surrogate keys in `Surrogate-Key`, which vcl_recv turns into a ban.

import directors;

# One backend per instance; the probe takes an instance out while its /ready fails.
backend instance1 {
    .host = "127.0.0.1";
    .port = "8001";
    .probe = { .url = "/ready"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; }
}
backend instance2 {
    .host = "127.0.0.1";
    .port = "8002";
    .probe = { .url = "/ready"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; }
}

# Who may purge: the instances' addresses.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_init {
    new instances = directors.round_robin();
    instances.add_backend(instance1);
    instances.add_backend(instance2);
}

sub vcl_recv {
    set req.backend_hint = instances.backend();
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.Surrogate-Key) {
            return (synth(400, "Surrogate-Key missing"));
        }
        # Keys never hold spaces or regular-expression operators (layer ids are percent-encoded).
        ban("obj.http.Surrogate-Key ~ (^|\s)(" + regsuball(req.http.Surrogate-Key, "\s+", "|") + ")(\s|$)");
        return (synth(200, "Purged"));
    }
    # Signed-in requests are never answered from the cache nor stored: what they get may not be public.
    if (req.http.Authorization) {
        return (pass);
    }
}

sub vcl_backend_response {
    # Only answers the server marks public are kept (private and no-store ones never); errors are not kept.
    if (beresp.status >= 400 || beresp.http.Cache-Control !~ "(^|,\s*)public") {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
}
