-- Evaluation protocol of each job (issue 10): were the scored images / subjects seen while fitting?
-- images: held_out | seen; subjects: held_out | seen. RDM jobs also link their predicted RDMs
-- (content digest of $HARNESS_HOME/model_rdms/<digest>.npz, see harness/model_rdms.py).
ALTER TABLE jobs ADD COLUMN images VARCHAR;
ALTER TABLE jobs ADD COLUMN subjects VARCHAR;
ALTER TABLE jobs ADD COLUMN model_rdms VARCHAR;
