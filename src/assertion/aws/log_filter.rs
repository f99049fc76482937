//! Keeps AWS session tokens out of TRACE logs while STS is called.

/// The AWS SDK logs every request with its headers at TRACE (`aws_smithy_runtime`'s orchestrator,
/// and `aws_sigv4`'s canonical request), which puts the session token (`x-amz-security-token`)
/// of temporary credentials into the logs. STS calls made here run under this wrapper of the
/// caller's subscriber, which drops exactly those TRACE events and forwards everything else.
pub(super) struct RedactSdkTrace {
    inner: tracing::Dispatch,
}

fn leaks_credentials(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::TRACE
        && (meta.target().starts_with("aws_sigv4")
            || meta
                .target()
                .starts_with("aws_smithy_runtime::client::orchestrator"))
}

pub(super) fn redacting_dispatch() -> tracing::Dispatch {
    let inner = tracing::dispatcher::get_default(Clone::clone);
    tracing::Dispatch::new(RedactSdkTrace { inner })
}

impl tracing::Subscriber for RedactSdkTrace {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        let interest = self.inner.register_callsite(meta);
        if leaks_credentials(meta) && !interest.is_never() {
            // Decided per call in `enabled`: other dispatchers may still want these events.
            tracing::subscriber::Interest::sometimes()
        } else {
            interest
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        !leaks_credentials(meta) && self.inner.enabled(meta)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.inner.new_span(span)
    }
    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.inner.record(span, values);
    }
    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.inner.record_follows_from(span, follows);
    }
    fn event(&self, event: &tracing::Event<'_>) {
        if !leaks_credentials(event.metadata()) {
            self.inner.event(event);
        }
    }
    fn enter(&self, span: &tracing::span::Id) {
        self.inner.enter(span);
    }
    fn exit(&self, span: &tracing::span::Id) {
        self.inner.exit(span);
    }
    fn clone_span(&self, id: &tracing::span::Id) -> tracing::span::Id {
        self.inner.clone_span(id)
    }
    fn try_close(&self, id: tracing::span::Id) -> bool {
        self.inner.try_close(id)
    }
    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}
