"""Segments: the definition language (definition, fields, values), its evaluation, RFM and the built-ins."""

from crm.segments.definition import SegmentDocument, SegmentInvalid, parse_segment, referenced_segments
from crm.segments.evaluate import Needs, Subject, matches, needs

__all__ = ["Needs", "SegmentDocument", "SegmentInvalid", "Subject", "matches", "needs", "parse_segment",
           "referenced_segments"]
