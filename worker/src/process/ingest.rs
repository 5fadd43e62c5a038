//! Download, convert and upload one partition (and, with a table, commit it):
//! what a refresh compares with, and the object's one upload.

use super::*;

/// Whether `date` is the newest partition the source should have (a 404 then
/// likely means "not published yet").
pub(super) fn is_recent(ds: &Dataset, date: NaiveDate) -> bool {
    let latest = lakefleet::plan::latest_published(ds, chrono::Local::now().date_naive());
    let window = match ds.cadence {
        Cadence::Daily => chrono::Days::new(1),
        Cadence::Weekly => chrono::Days::new(7),
        Cadence::Monthly => chrono::Days::new(31),
    };
    date + window > latest
}

/// What the object `key` was made from, as its footer says (the checksum
/// and validators of its source); `None` when it is not there or its footer
/// does not say (a warning: the refresh then asks without validators).
pub(super) async fn made_from(ctx: &Ctx, key: &str) -> Option<DoneMarker> {
    use lakefleet::convert::meta;
    let found = async {
        let head = ctx.lake.head(key).await?.ok_or_else(|| anyhow::anyhow!("no such object"))?;
        let footer = ctx.lake.parquet_metadata(key, head.size).await?;
        let fm = footer.file_metadata();
        let kv: std::collections::HashMap<&str, &str> = fm
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
            .collect();
        let text = |k: &str| kv.get(k).filter(|v| !v.is_empty()).map(|v| v.to_string());
        let sha256 =
            text(meta::SOURCE_SHA256).ok_or_else(|| anyhow::anyhow!("its footer has no {}", meta::SOURCE_SHA256))?;
        Ok::<_, anyhow::Error>(DoneMarker {
            object_key: key.to_string(),
            size: head.size,
            rows: fm.num_rows().max(0) as u64,
            sha256,
            source: lakefleet::source::Validators {
                etag: text(meta::SOURCE_ETAG),
                last_modified: text(meta::SOURCE_LAST_MODIFIED),
                content_length: None,
            },
        })
    };
    match found.await {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(object = %ctx.lake.display(key), error = %format!("{e:#}"), "refresh: what the table's current generation was made from is unknown; the done marker is used if it names that object");
            None
        }
    }
}

/// What an ingest did.
pub(super) enum Ingest {
    Uploaded(Uploaded, DoneMarker),
    /// A refresh found the source as it was: `304` (not downloaded) or the
    /// same checksum (downloaded, not written).
    Unchanged(&'static str),
    /// The source host is paused or full: delayed, not an attempt.
    HostBusy(Done),
}

pub(super) async fn convert_and_upload(
    ctx: &Arc<Ctx>,
    c: &Checked<'_>,
    task: &Task,
    before: Option<&DoneMarker>,
    generation: Option<u64>,
) -> Result<Ingest, Failure> {
    let (m, ds) = (&ctx.metrics, c.ds);
    let dl_start = Instant::now();
    let bytes_counter = m.source_bytes.with_label_values(&[&ds.name]);
    let on_chunk = move |n: usize| bytes_counter.inc_by(n as u64);
    // No download starts once the worker is shutting down.
    ctx.before_download().await;
    // Held until the download ends: the fleet's limits per source host.
    let host = ds.source_host(c.date, task.mirror.as_deref());
    let slot = match host_slot(ctx, ds, &host, task.lane).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(Ingest::HostBusy(busy)),
    };
    // A Socrata slice: its count first, then its pages (a 404 there is an
    // unknown dataset id, not a partition still to be published).
    let (download, counted) = match ds.socrata_query(c.date, task.mirror.as_deref()) {
        Some(q) => {
            let fetch = |e| Failure::from_fetch(e, false);
            let count = throttled(ctx, ds, &host, ctx.fetcher.socrata_count(&q).await).await.map_err(fetch)?;
            if count > ds.max_slice_rows {
                return Err(Failure::permanent(
                    Reason::TooLarge,
                    format!(
                        "{}: count(*) says the slice holds {count} rows, more than the dataset's max_slice_rows {}; no page was asked for (a portal whose count is wrong, or raise max_slice_rows)",
                        q.count_url(),
                        ds.max_slice_rows
                    ),
                ));
            }
            let page_rows = ds.socrata.as_ref().map_or(50_000, |s| s.page_rows) as u64;
            let pace = match &slot {
                Some(s) => s.pace(ds.max_requests_per_second_per_host),
                None => lakefleet::source::unpaced(),
            };
            let mut pages = ctx.fetcher.socrata_pages(&q, count, page_rows, pace.clone(), on_chunk.clone()).await;
            // The portal refused the query: the dataset id may spell some
            // fields the old way (data.ny.gov's 2014 turnstile set).
            if let (Err(FetchError::Status { status: 400, detail, .. }), Some(old)) = (&pages, q.aliased()) {
                info!(task = %task.label(), portal = detail.as_deref().unwrap_or(""), select = %old.select.join(","), "query refused: asking again with the id's older field names");
                pages = ctx.fetcher.socrata_pages(&old, count, page_rows, pace, on_chunk).await;
            }
            (throttled(ctx, ds, &host, pages).await.map_err(fetch)?, Some(count))
        }
        None => {
            let fetch = |e| Failure::from_fetch(e, is_recent(ds, c.date));
            let since = before.map(|b| &b.source).filter(|v| v.usable());
            match throttled(ctx, ds, &host, ctx.fetcher.open_if_changed(&c.url, since, on_chunk).await)
                .await
                .map_err(fetch)?
            {
                Opened::Body(d) => (d, None),
                Opened::NotModified => return Ok(Ingest::Unchanged("304 Not Modified")),
            }
        }
    };
    let validators = download.validators.clone();

    let spool = SpoolFile::new(&ctx.spool_dir, "parquet");
    // A Parquet source is spooled whole before it is read (its footer comes last).
    let source_spool = SpoolFile::new(&ctx.spool_dir, "source");
    let file = std::fs::File::create(&spool.0)
        .map_err(|e| Failure::transient(format!("creating spool file {}: {e}", spool.0.display())))?;
    let ds2 = ds.clone();
    let prov = Provenance {
        source_url: c.url.clone(),
        partition: task.partition.clone(),
        date: Some(c.date),
        validators: validators.clone(),
    };
    let convert_start = Instant::now();
    let (reader, pump, expected) = (download.reader, download.pump, download.content_length);
    let source_path = source_spool.0.clone();
    let conv = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        convert::convert_source(&ds2, reader, expected, &source_path, out, &prov)
    });
    // Stopped if this task is abandoned (timeout, shutdown): the conversion
    // thread then sees the end of its input and stops too.
    let mut pump = AbortOnDrop(pump);
    let _ = (&mut pump.0).await;
    drop(slot);
    m.stage_duration.with_label_values(&[&ds.name, stage::DOWNLOAD]).observe(dl_start.elapsed().as_secs_f64());
    let stats =
        conv.await.map_err(|e| Failure::transient(format!("conversion thread failed: {e}")))?.map_err(Failure::from)?;
    m.stage_duration.with_label_values(&[&ds.name, stage::CONVERT]).observe(convert_start.elapsed().as_secs_f64());
    drop(source_spool);
    if let Some(count) = counted
        && stats.rows != count
    {
        return Err(Failure::transient(format!(
            "{}: the slice changed while it was read: count(*) said {count} rows, its pages held {}; it is read again",
            c.url, stats.rows
        )));
    }

    if before.is_some_and(|b| b.sha256 == stats.source_sha256) {
        return Ok(Ingest::Unchanged("same checksum"));
    }
    let size = std::fs::metadata(&spool.0)
        .map_err(|e| Failure::transient(format!("reading spool file {}: {e}", spool.0.display())))?
        .len();
    let up_start = Instant::now();
    // Without a table, a refresh replaces the object in one step (a single
    // PUT, or a completed multipart upload): readers see the old object or
    // the new one. With a table, every generation has its own key.
    let existing = match generation {
        Some(_) => lakefleet::lake::Existing::Replace,
        None if task.overwrite || task.refresh => lakefleet::lake::Existing::Overwrite,
        None => lakefleet::lake::Existing::Adopt,
    };
    let uploaded = ctx.lake.upload_file(&c.key, &spool.0, size, existing).await?;
    m.stage_duration.with_label_values(&[&ds.name, stage::UPLOAD]).observe(up_start.elapsed().as_secs_f64());
    let result = match uploaded {
        Uploaded::Written => "written",
        Uploaded::AlreadyPresent => "already_present",
    };
    m.uploads.with_label_values(&[&ds.name, result]).inc();
    if uploaded == Uploaded::Written {
        m.rows_written.with_label_values(&[&ds.name]).inc_by(stats.rows);
        m.parquet_bytes.with_label_values(&[&ds.name]).inc_by(size);
    }
    // The Add's statistics come from the object's own footer (still in the spool).
    let add_stats = generation.and_then(|_| lakefleet::table::stats::of_file(&spool.0));
    drop(spool);
    // The done marker comes after the commit.
    if let Some(g) = generation {
        let _ = PERMIT.try_with(|p| p.borrow_mut().take());
        commit(ctx, c, task, g, (size, stats.rows), add_stats).await?;
    }
    let marker = DoneMarker {
        object_key: c.key.clone(),
        size,
        rows: stats.rows,
        sha256: stats.source_sha256,
        source: validators,
    };
    Ok(Ingest::Uploaded(uploaded, marker))
}
