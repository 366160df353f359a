-- Checks that entries balance once per INSERT statement instead of once per posting row.
--
-- 0001 checked every entry at commit with a deferred row-level constraint trigger: one query per
-- posting, which under group commit (hundreds of postings per transaction) cost more than the
-- inserts themselves. The ledger writes all postings of a batch in one INSERT, so a
-- statement-level trigger over the statement's transition table sees every leg of every entry it
-- touches and checks them all with one query. It is also stricter: postings inserted one at a
-- time by hand are refused at the first statement, since an entry must balance within the
-- statement that writes it.
DROP TRIGGER postings_entry_balanced ON postings;
DROP FUNCTION ledger_check_entry_balanced();

CREATE FUNCTION ledger_check_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced RECORD;
BEGIN
    SELECT entry_id, currency, sum(amount_micros) AS total INTO unbalanced
    FROM inserted_postings
    GROUP BY entry_id, currency HAVING sum(amount_micros) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry % does not balance in %: sum %', unbalanced.entry_id, unbalanced.currency, unbalanced.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER postings_entries_balanced AFTER INSERT ON postings
    REFERENCING NEW TABLE AS inserted_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries_balanced();
