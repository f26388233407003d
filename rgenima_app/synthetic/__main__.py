"""``python -m rgenima_app.synthetic OUT --preset {tiny,demo,bench} --seed N ...``: write a synthetic cohort."""
from rgenima_app.synthetic.cohort import main

if __name__ == "__main__":
    main()
