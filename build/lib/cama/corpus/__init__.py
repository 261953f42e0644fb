"""corpus: get raw data (download) and turn it into documents (readers, normalise).

raw file --readers.iter_records--> record --normalise--> document (id, text, lang, source, meta)
"""
